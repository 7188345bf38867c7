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

{{/* The release's own Secret: the chart-managed one, or secret.existingSecret. */}}
{{- define "countersign.secretName" -}}
{{- default (include "countersign.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* The secret values and the variables they become (secret.<field> -> env). */}}
{{- define "countersign.secretFields" -}}
secretKey: COUNTERSIGN_SECRET_KEY
databaseUrl: COUNTERSIGN_DATABASE_URL
redisUrl: COUNTERSIGN_REDIS_URL
keycloakClientSecret: COUNTERSIGN_KEYCLOAK_CLIENT_SECRET
{{- end }}

{{/* The secret keys the service reads; refused in `config`. */}}
{{- define "countersign.secretEnvNames" -}}
COUNTERSIGN_SECRET_KEY COUNTERSIGN_DATABASE_URL COUNTERSIGN_REDIS_URL COUNTERSIGN_KEYCLOAK_CLIENT_SECRET
{{- end }}

{{/* The reference {name, key} set for one secret field, or nothing. Argument: (list . "<field>") */}}
{{- define "countersign.secretRef" -}}
{{- $root := index . 0 }}
{{- $refs := $root.Values.secret.existingSecretRefs | default dict }}
{{- $ref := index $refs (index . 1) | default dict }}
{{- if $ref.name }}
{{- toYaml $ref }}
{{- end }}
{{- end }}

{{/* "true" when a secret field has a value from somewhere: a reference, existingSecret or the value. */}}
{{- define "countersign.secretProvided" -}}
{{- $root := index . 0 }}
{{- $field := index . 1 }}
{{- if or (include "countersign.secretRef" (list $root $field)) $root.Values.secret.existingSecret (index $root.Values.secret $field) }}true{{ end }}
{{- end }}

{{/* "true" when the pods talk to Redis: the worker runs, or a Redis URL is given explicitly. */}}
{{- define "countersign.usesRedis" -}}
{{- if or .Values.worker.enabled (include "countersign.secretRef" (list . "redisUrl")) (and (not .Values.secret.existingSecret) .Values.secret.redisUrl) }}true{{ end }}
{{- end }}

{{/* Fails with what is missing: the secret key and the database always, Redis with the worker. */}}
{{- define "countersign.validate" -}}
{{- if not (include "countersign.secretProvided" (list . "secretKey")) }}
{{- fail "secret.secretKey is required (a Fernet key): set it, secret.existingSecretRefs.secretKey.name, or secret.existingSecret" }}
{{- end }}
{{- if not (include "countersign.secretProvided" (list . "databaseUrl")) }}
{{- fail "secret.databaseUrl is required (postgresql+asyncpg://...): set it, secret.existingSecretRefs.databaseUrl.name, or secret.existingSecret" }}
{{- end }}
{{- if and .Values.worker.enabled (not (include "countersign.secretProvided" (list . "redisUrl"))) }}
{{- fail "secret.redisUrl is required when worker.enabled (the arq worker runs on Redis): set it, secret.existingSecretRefs.redisUrl.name, or secret.existingSecret; or set worker.enabled=false" }}
{{- end }}
{{- $config := .Values.config }}
{{- if eq (toString (index $config "COUNTERSIGN_AUTH_MODE")) "oidc" }}
{{- range $name := list "COUNTERSIGN_OIDC_ISSUERS" "COUNTERSIGN_OIDC_JWKS_URL" "COUNTERSIGN_OIDC_AUDIENCE" }}
{{- if not (index $config $name) }}
{{- fail (printf "config.%s is required with COUNTERSIGN_AUTH_MODE=oidc (see docs/security.md, Configuring Keycloak)" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.networkPolicy.enabled }}
{{- if not .Values.networkPolicy.egress.database.to }}
{{- fail "networkPolicy.egress.database.to is required with networkPolicy.enabled: the peers (podSelector/namespaceSelector/ipBlock) of your PostgreSQL" }}
{{- end }}
{{- if and (include "countersign.usesRedis" .) (not .Values.networkPolicy.egress.redis.to) }}
{{- fail "networkPolicy.egress.redis.to is required with networkPolicy.enabled and Redis: the peers of your Redis" }}
{{- end }}
{{- end }}
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
{{- if .Values.worker.metrics.enabled }}
COUNTERSIGN_WORKER_METRICS_PORT: {{ .Values.worker.metrics.port | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* data: of the chart-managed Secret (base64): the values that no reference replaces. */}}
{{- define "countersign.secretData" -}}
{{- $root := . }}
{{- if not .Values.secret.existingSecret }}
{{- range $field, $env := include "countersign.secretFields" . | fromYaml }}
{{- $value := index $root.Values.secret $field }}
{{- if and $value (not (include "countersign.secretRef" (list $root $field))) }}
{{ $env }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" when the chart renders a Secret of its own (it has something to hold). */}}
{{- define "countersign.managedSecret" -}}
{{- if trim (include "countersign.secretData" .) }}true{{ end }}
{{- end }}

{{/* Environment shared by every container: ConfigMap + the release's Secret + extras. Argument: (list . "<configmap name>" "<chart-managed secret name>") */}}
{{- define "countersign.envFrom" -}}
{{- $root := index . 0 }}
- configMapRef:
    name: {{ index . 1 }}
{{- if $root.Values.secret.existingSecret }}
- secretRef:
    name: {{ $root.Values.secret.existingSecret }}
{{- else if include "countersign.managedSecret" $root }}
- secretRef:
    name: {{ index . 2 }}
{{- end }}
{{- with $root.Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* env: of every container: the existing-secret references (they win over envFrom), then extraEnv. */}}
{{- define "countersign.env" -}}
{{- $root := . }}
{{- range $field, $env := include "countersign.secretFields" . | fromYaml }}
{{- $ref := include "countersign.secretRef" (list $root $field) | fromYaml }}
{{- if $ref }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key | default $env }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Checksums that roll the pods when their configuration changes. */}}
{{- define "countersign.configChecksums" -}}
checksum/config: {{ include "countersign.configData" . | sha256sum }}
{{- if include "countersign.managedSecret" . }}
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
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.scratch.dataSizeLimit }}
{{- end }}

{{/* affinity + topologySpreadConstraints of one component's pods. Argument: (list . "<component>") */}}
{{- define "countersign.scheduling" -}}
{{- $root := index . 0 }}
{{- $component := index . 1 }}
{{- $values := index $root.Values $component }}
{{- $selector := include "countersign.componentSelectorLabels" (list $root $component) }}
{{- if $values.affinity }}
affinity:
  {{- toYaml $values.affinity | nindent 2 }}
{{- else if eq $values.podAntiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- $selector | nindent 12 }}
{{- else if eq $values.podAntiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- $selector | nindent 14 }}
{{- end }}
{{- if $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml $values.topologySpreadConstraints | nindent 2 }}
{{- else if $values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ $values.topologySpread.maxSkew }}
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: {{ $values.topologySpread.zoneWhenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- $selector | nindent 8 }}
  - maxSkew: {{ $values.topologySpread.maxSkew }}
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ $values.topologySpread.nodeWhenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- $selector | nindent 8 }}
{{- end }}
{{- end }}
