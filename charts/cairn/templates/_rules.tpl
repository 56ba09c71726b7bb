{{/*
The operator's permissions: operator::rbac::RULES (src/operator/rbac.rs) without the Lease row,
which the chart grants in the release's namespace only. tests/chart.rs fails when this drifts
from the table.
*/}}
{{- define "cairn.operatorRules" -}}
- apiGroups: ["cairn.dev"]
  resources: ["aigateways", "aibackends", "airoutes", "mcpgateways", "mcpservers", "agentgateways", "agents", "agentpolicies"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["cairn.dev"]
  resources: ["aigateways/status", "aibackends/status", "airoutes/status", "mcpgateways/status", "mcpservers/status", "agentgateways/status", "agents/status", "agentpolicies/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{- define "cairn.leaseRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "patch"]
{{- end -}}
