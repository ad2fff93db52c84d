{{- define "hayhooks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hayhooks.fullname" -}}
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

{{- define "hayhooks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hayhooks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hayhooks.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "hayhooks.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hayhooks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hayhooks.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The chart's own Secret holds whatever the values give inline. */}}
{{- define "hayhooks.secretName" -}}
{{- include "hayhooks.fullname" . }}
{{- end }}

{{- define "hayhooks.claimName" -}}
{{- default (printf "%s-pipelines" (include "hayhooks.fullname" .)) .Values.store.persistence.existingClaim }}
{{- end }}

{{- define "hayhooks.needsSecret" -}}
{{- if or (and .Values.adminToken.value (not .Values.adminToken.existingSecret)) (and .Values.apiKeys.values (not .Values.apiKeys.existingSecret)) (and .Values.secretEnv.values (not .Values.secretEnv.existingSecret)) (and (eq .Values.store.type "redis") .Values.store.redis.url (not .Values.store.redis.existingSecret)) }}true{{- end }}
{{- end }}

{{/* The pod's grace period covers preStop, the shutdown delay and the drain, plus a margin. */}}
{{- define "hayhooks.gracePeriod" -}}
{{- add .Values.drain.preStopSeconds .Values.drain.shutdownDelaySeconds .Values.drain.gracefulShutdownSeconds .Values.drain.marginSeconds }}
{{- end }}
