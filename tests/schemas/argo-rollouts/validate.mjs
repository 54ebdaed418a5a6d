// Validate Argo Rollouts objects with @kubernetes-models/argo-rollouts (JSON Schema validators
// generated from Argo Rollouts' API types). Reads a JSON array of objects on stdin and prints a
// JSON array with one list of error messages per object. Used by tests/test_deploy.py when the
// CRD files themselves are not on the machine (see README.md).
import { Rollout } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout";
import { AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate";

const MODELS = { Rollout, AnalysisTemplate };
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const docs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = docs.map((doc) => {
  const Model = MODELS[doc.kind];
  if (!Model) return [`no model for kind ${doc.kind}`];
  try {
    new Model(doc).validate();
    return [];
  } catch (error) {
    return String(error.message).split("\n").filter(Boolean);
  }
});
process.stdout.write(JSON.stringify(results));
