{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "hush.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: `<release>-hush`, or the release name when it already says hush. */}}
{{- define "hush.fullname" -}}
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

{{- define "hush.webhookName" -}}
{{- printf "%s-webhook" (include "hush.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hush.guardName" -}}
{{- printf "%s-guard" (include "hush.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hush.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "hush.webhookName" .)) .Values.tls.secretName }}
{{- end }}

{{- define "hush.guardNamespace" -}}
{{- default .Release.Namespace .Values.guard.namespace }}
{{- end }}

{{- define "hush.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "hush.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hush.webhookSelector" -}}
app.kubernetes.io/name: {{ include "hush.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "hush.guardSelector" -}}
app.kubernetes.io/name: {{ include "hush.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: guard
{{- end }}

{{/* An image reference from {repository, tag, digest}: the digest pins it, the tag defaults to appVersion. */}}
{{- define "hush.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* The checks no schema can express; failing here beats a webhook that cannot work. */}}
{{- define "hush.validate" -}}
{{- if not (has .Values.tls.mode (list "generate" "certManager" "secret")) }}
{{- fail (printf "tls.mode must be generate, certManager or secret, not %q" .Values.tls.mode) }}
{{- end }}
{{- if and (eq .Values.tls.mode "secret") (not .Values.tls.caBundle) }}
{{- fail "tls.mode=secret needs tls.caBundle (base64 PEM of the CA that signed the Secret's certificate)" }}
{{- end }}
{{- if and (eq .Values.tls.mode "secret") (not .Values.tls.secretName) }}
{{- fail "tls.mode=secret needs tls.secretName" }}
{{- end }}
{{- if ge (float64 .Values.webhook.registryTimeout) (float64 .Values.webhook.timeoutSeconds) }}
{{- fail "webhook.registryTimeout must be below webhook.timeoutSeconds: a slow registry should get the webhook's denial, not an API server timeout" }}
{{- end }}
{{- if not (has .Values.guard.mode (list "auto" "lsm" "fentry" "tracepoint" "audit")) }}
{{- fail (printf "guard.mode must be auto, lsm, fentry, tracepoint or audit, not %q" .Values.guard.mode) }}
{{- end }}
{{- if not (hasPrefix "/sys/fs/bpf/" .Values.guard.pinRoot) }}
{{- fail "guard.pinRoot must be under /sys/fs/bpf/ (the node's bpffs is mounted there)" }}
{{- end }}
{{- end }}
