{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "countersign.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-<chart>, or the release name when it already has it. */}}
{{- define "countersign.fullname" -}}
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

{{- define "countersign.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "countersign.labels" -}}
helm.sh/chart: {{ include "countersign.chart" . }}
{{ include "countersign.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "countersign.selectorLabels" -}}
app.kubernetes.io/name: {{ include "countersign.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one component (api, worker, migrate). Usage: include "countersign.componentSelectorLabels" (list . "api") */}}
{{- define "countersign.componentSelectorLabels" -}}
{{ include "countersign.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "countersign.componentLabels" -}}
{{ include "countersign.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "countersign.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "countersign.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "countersign.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "countersign.secretName" -}}
{{- default (include "countersign.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* The secret keys the service reads; refused in `config`. */}}
{{- define "countersign.secretEnvNames" -}}
COUNTERSIGN_SECRET_KEY COUNTERSIGN_DATABASE_URL COUNTERSIGN_REDIS_URL COUNTERSIGN_KEYCLOAK_CLIENT_SECRET
{{- end }}

{{/* data: of the ConfigMap (shared by the release ConfigMap and the migration hook's copy). */}}
{{- define "countersign.configData" -}}
{{- $secretNames := splitList " " (include "countersign.secretEnvNames" .) }}
{{- range $key, $value := .Values.config }}
{{- if has $key $secretNames }}
{{- fail (printf "config.%s is a secret: set it under `secret` (or in secret.existingSecret) instead" $key) }}
{{- end }}
{{- if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- if .Values.worker.enabled }}
COUNTERSIGN_WORKER_JOB_COMPLETION_WAIT: {{ .Values.worker.jobCompletionWaitSeconds | toString | quote }}
COUNTERSIGN_WORKER_HEALTH_CHECK_INTERVAL: {{ .Values.worker.healthCheckIntervalSeconds | toString | quote }}
{{- end }}
{{- end }}

{{/* data: of the chart-managed Secret (base64). Validates the required values. */}}
{{- define "countersign.secretData" -}}
{{- $s := .Values.secret }}
COUNTERSIGN_SECRET_KEY: {{ required "secret.secretKey is required (a Fernet key), or set secret.existingSecret" $s.secretKey | b64enc | quote }}
COUNTERSIGN_DATABASE_URL: {{ required "secret.databaseUrl is required (postgresql+asyncpg://...), or set secret.existingSecret" $s.databaseUrl | b64enc | quote }}
{{- if $s.redisUrl }}
COUNTERSIGN_REDIS_URL: {{ $s.redisUrl | b64enc | quote }}
{{- else if .Values.worker.enabled }}
{{- fail "secret.redisUrl is required when worker.enabled (the arq worker runs on Redis); or set worker.enabled=false" }}
{{- end }}
{{- if $s.keycloakClientSecret }}
COUNTERSIGN_KEYCLOAK_CLIENT_SECRET: {{ $s.keycloakClientSecret | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Environment shared by every container: ConfigMap + Secret + extras. Argument: (list . "<configmap name>" "<secret name>") */}}
{{- define "countersign.envFrom" -}}
{{- $root := index . 0 }}
- configMapRef:
    name: {{ index . 1 }}
- secretRef:
    name: {{ index . 2 }}
{{- with $root.Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Checksums that roll the pods when their configuration changes. */}}
{{- define "countersign.configChecksums" -}}
checksum/config: {{ include "countersign.configData" . | sha256sum }}
{{- if not .Values.secret.existingSecret }}
checksum/secret: {{ include "countersign.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* Writable scratch space: the root filesystem is read-only. */}}
{{- define "countersign.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- end }}

{{- define "countersign.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- end }}
