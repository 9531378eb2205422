{{/* Names */}}
{{- define "tidegate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tidegate.fullname" -}}
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

{{- define "tidegate.gatewayName" -}}
{{- printf "%s-gateway" (include "tidegate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tidegate.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "tidegate.gatewayName" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* A model's headless Service: (list $root $model) */}}
{{- define "tidegate.workerServiceName" -}}
{{- $root := index . 0 }}{{- $model := index . 1 }}
{{- printf "%s-%s" (include "tidegate.fullname" $root) $model.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels */}}
{{- define "tidegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tidegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tidegate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tidegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tidegate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod template labels: no chart or app version, so a chart upgrade that changes nothing
in a pod does not restart it (a worker restart reloads its model for minutes). */}}
{{- define "tidegate.podLabels" -}}
{{ include "tidegate.selectorLabels" . }}
app.kubernetes.io/part-of: tidegate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* What the gateway discovers workers by: labels of the workers' headless Services, which
Kubernetes copies onto their EndpointSlices. */}}
{{- define "tidegate.workerSelectorLabels" -}}
{{ include "tidegate.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "tidegate.workerSelector" -}}
{{- $pairs := list }}
{{- range $k, $v := include "tidegate.workerSelectorLabels" . | fromYaml }}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) }}
{{- end }}
{{- join "," (sortAlpha $pairs) }}
{{- end }}

{{- define "tidegate.image" -}}
{{- $image := index . 0 }}{{- $root := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/* Restricted pod security: the same for every pod. */}}
{{- define "tidegate.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tidegate.containerSecurityContext" -}}
allowPrivilegeEscalation: false
runAsNonRoot: true
runAsUser: 10001
capabilities:
  drop: [ALL]
{{- end }}

{{/* The gateway's settings file (gateway/settings.py's schema). With the `affinity` default
profile, scheduler.gateway_replicas defaults to gateway.replicas (the estimate it feeds costs
least-queue some balance, docs/routing.md); a value in gateway.config wins. */}}
{{- define "tidegate.gatewayConfig" -}}
{{- $served := list }}
{{- $profile := dig "scheduler" "default_profile" "least-queue" .Values.gateway.config }}
{{- $scheduler := dict }}
{{- if eq $profile "affinity" }}
{{- $scheduler = dict "gateway_replicas" (int .Values.gateway.replicas) }}
{{- end }}
{{- range .Values.models }}
{{- $served = append $served (default .model .servedModelName) }}
{{- end }}
{{- $generated := dict
  "server" (dict "host" "0.0.0.0" "port" .Values.gateway.port "log_level" .Values.gateway.logLevel)
  "discovery" (dict "kubernetes" (dict
    "namespace" .Release.Namespace
    "label_selector" (include "tidegate.workerSelector" .)
    "port_name" "http"
    "auth" "in-cluster"
    "watch_timeout_s" .Values.gateway.discovery.watchTimeoutSeconds))
  "scheduler" $scheduler
  "models" $served }}
{{- toYaml (mergeOverwrite $generated (deepCopy .Values.gateway.config)) }}
{{- end }}

{{- define "tidegate.autoscalerName" -}}
{{- printf "%s-autoscaler" (include "tidegate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tidegate.autoscalerServiceAccountName" -}}
{{- if .Values.autoscaler.serviceAccount.create }}
{{- default (include "tidegate.autoscalerName" .) .Values.autoscaler.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.autoscaler.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The autoscaler's settings file (autoscaler/controller/settings.py's schema). */}}
{{- define "tidegate.autoscalerConfig" -}}
{{- $a := .Values.autoscaler }}
{{- $generated := dict
  "namespace" .Release.Namespace
  "interval_s" $a.intervalSeconds
  "log_level" $a.logLevel
  "auth" "in-cluster"
  "leader_election" (dict "enabled" true "lease_name" (include "tidegate.autoscalerName" .) "namespace" .Release.Namespace)
  "health" (dict "host" "0.0.0.0" "port" 8080) }}
{{- if $a.prometheusUrl }}
{{- $_ := set $generated "signals" (dict "prometheus" (dict "url" $a.prometheusUrl)) }}
{{- end }}
{{- toYaml (mergeOverwrite $generated (deepCopy $a.config)) }}
{{- end }}
