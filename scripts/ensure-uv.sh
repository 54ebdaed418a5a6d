# Sourced by the other scripts: make `uv` available with nothing but Python 3.11+ and pip.
if ! command -v uv >/dev/null 2>&1; then
  echo "uv not found: installing it with pip (python3 -m pip install --user uv)" >&2
  python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
  PATH="$(python3 -m site --user-base)/bin:$PATH"
  export PATH
fi
export DVC_NO_ANALYTICS=1 BENTOML_DO_NOT_TRACK=true
