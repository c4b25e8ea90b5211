{{/* Names, labels and switches shared by the templates. */}}

{{- define "ade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ade.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ade.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ade.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ade-runner-operator
{{- end -}}

{{- define "ade.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ade.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: set it when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ade.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "true" when the operator watches the whole cluster (no watchNamespaces). */}}
{{- define "ade.clusterwide" -}}
{{- if not .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* "true" when replicas coordinate through kopf peering. */}}
{{- define "ade.peering" -}}
{{- if or .Values.peering.enabled (gt (int .Values.replicas) 1) -}}true{{- end -}}
{{- end -}}

{{/* "true" when the webhook receiver is on (ports.receiver is not 0). */}}
{{- define "ade.receiver" -}}
{{- if gt (int .Values.ports.receiver) 0 -}}true{{- end -}}
{{- end -}}

{{- define "ade.peeringName" -}}
{{- default (include "ade.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/*
The rules the operator needs, the same in a ClusterRole and in each namespace's Role.
Every rule names the code that needs it; nothing else is granted.
*/}}
{{- define "ade.rules" -}}
# kopf watches RunnerImages (list, watch) and patches them: the finalizer and its bookkeeping
# annotations (kopf.runners.ade.dev/*).
- apiGroups: [runners.ade.dev]
  resources: [runnerimages]
  verbs: [list, watch, patch]
# The reconcile's one status patch per change (kopf writes status through the subresource).
- apiGroups: [runners.ade.dev]
  resources: [runnerimages/status]
  verbs: [patch]
# WebhookReceivers (controller/receivers): kopf watches them (list, watch) and the receiver
# reads them (get) to tell which one a request's path is for; the RunnerImages an event concerns
# are nudged through the runnerimages patch above. Never created, changed or deleted.
- apiGroups: [runners.ade.dev]
  resources: [webhookreceivers]
  verbs: [get, list, watch]
# A WebhookReceiver's status (its webhookPath and Ready condition), through the subresource.
- apiGroups: [runners.ade.dev]
  resources: [webhookreceivers/status]
  verbs: [patch]
# Build Jobs and their context ConfigMaps carry an owner reference with blockOwnerDeletion,
# which clusters with the OwnerReferencesPermissionEnforcement admission plugin allow only to
# those who may update the owner's finalizers.
- apiGroups: [runners.ade.dev]
  resources: [runnerimages/finalizers]
  verbs: [update]
# Events on transitions (kopf.event: core/v1 Events, created only).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Push, git and Azure credentials named by spec.*.secretRef / pushSecretRef (controller/kube.py
# read_secret): read one by name, never listed or watched.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# The Job backend: the build context ConfigMap is created with the Job and deleted when the
# build is pruned (controller/builds/job_backend.py).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, delete]
# The Job backend: create a build Job, read it, list a RunnerImage's Jobs to prune the history,
# delete pruned Jobs and Jobs stuck Pending; watch the operator's Jobs (by label) so that a
# build Job's end wakes its RunnerImage's reconcile at once (controller/handlers.py).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
# The Job backend reads the build pod's state and termination message (the digest).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
{{- end -}}
