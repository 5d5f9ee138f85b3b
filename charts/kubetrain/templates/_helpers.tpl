{{/* The chart name, overridable so that a renamed install needs no template edits. */}}
{{- define "kubetrain.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name, cut to 63 characters: object names must be DNS labels. */}}
{{- define "kubetrain.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the operator's objects; release "kubetrain" gives the names of manifests/. */}}
{{- define "kubetrain.operator.fullname" -}}
{{- printf "%s-operator" (include "kubetrain.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the leader-election Role and RoleBinding: <operator name>-leader, cut at 63. */}}
{{- define "kubetrain.operator.leaderName" -}}
{{- printf "%s-leader" (include "kubetrain.operator.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{/* Chart name and version for the helm.sh/chart label, which allows no "+". */}}
{{- define "kubetrain.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pod; they never change, as a Deployment selector cannot. */}}
{{- define "kubetrain.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubetrain.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object, so that `kubectl get -l app.kubernetes.io/instance=<release>` finds them all. */}}
{{- define "kubetrain.labels" -}}
{{ include "kubetrain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "kubetrain.chart" . }}
{{- end }}

{{/* The ServiceAccount the operator runs as: the chart's own, or an existing one. */}}
{{- define "kubetrain.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubetrain.operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Rules on namespaced resources: kept equal to manifests/rbac.yaml by tests/install. */}}
{{- define "kubetrain.operator.namespacedRules" -}}
# Watch jobs; delete them when ttlSecondsAfterFinished passes.
- apiGroups: [kubetrain.io]
  resources: [trainingjobs]
  verbs: [get, list, watch, delete]
- apiGroups: [kubetrain.io]
  resources: [trainingjobs/status]
  verbs: [get, patch]
# Replica pods and their headless services.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [create]
{{- if .Values.jobNetworkPolicy }}
# One NetworkPolicy per job: only the job's own pods reach its TF port.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [create]
{{- end }}
# Events on TrainingJobs (ours and kopf's warnings).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Rules on cluster-scoped resources, which only a ClusterRole can grant. */}}
{{- define "kubetrain.operator.clusterRules" -}}
# kopf notices CRDs and namespaces appearing at run time.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{/* Leader election on the operator's Lease: kept equal to manifests/rbac.yaml by tests/install. */}}
{{- define "kubetrain.operator.leaderRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end }}
