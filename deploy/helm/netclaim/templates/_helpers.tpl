{{/* The namespace everything namespaced goes into. */}}
{{- define "netclaim.namespace" -}}
{{- required "namespace.name is required" .Values.namespace.name -}}
{{- end -}}

{{/* The agent ServiceAccount's user name, as the admission policies match it. */}}
{{- define "netclaim.agentUser" -}}
system:serviceaccount:{{ include "netclaim.namespace" . }}:netclaim-agent
{{- end -}}

{{/* The agent's image reference. */}}
{{- define "netclaim.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The kubelet's root directory, without a trailing slash. */}}
{{- define "netclaim.kubeletRootDir" -}}
{{- required "kubelet.rootDir is required" .Values.kubelet.rootDir | trimSuffix "/" -}}
{{- end -}}

{{/* The host's CNI plugin directory. */}}
{{- define "netclaim.cniBinDir" -}}
{{- if .Values.cni.binDir -}}
{{ .Values.cni.binDir }}
{{- else if .Values.openshift -}}
/var/lib/cni/bin
{{- else -}}
/opt/cni/bin
{{- end -}}
{{- end -}}

{{/*
The ConfigMap's agent.yaml: apiVersion and kind first, as in the kustomize
base, then agentConfig with kubelet.rootDir and http.port where they are not
the agent's defaults, then devices. On OpenShift, empty devices are the
overlay's opt-in policy, written as deploy/overlays/openshift writes it.
*/}}
{{- define "netclaim.agentConfig" -}}
{{- $config := deepCopy (.Values.agentConfig | default dict) -}}
{{- $_ := unset $config "devices" -}}
{{- $rootDir := include "netclaim.kubeletRootDir" . -}}
{{- if ne $rootDir "/var/lib/kubelet" -}}
{{- $kubelet := get $config "kubelet" | default dict -}}
{{- $_ := set $kubelet "rootDir" $rootDir -}}
{{- $_ := set $config "kubelet" $kubelet -}}
{{- end -}}
{{- if ne (int .Values.http.port) 9402 -}}
{{- $http := get $config "http" | default dict -}}
{{- $_ := set $http "port" (int .Values.http.port) -}}
{{- $_ := set $config "http" $http -}}
{{- end -}}
apiVersion: netclaim.dev/v1alpha1
kind: AgentConfig
{{- if $config }}
{{ toYaml $config }}
{{- end }}
{{- if and .Values.openshift (empty .Values.devices) }}
devices:
  # Opt-in: add rules such as
  #   - attributes: {pciVendorID: "15b3", isSriovVf: true}
  #     multusResourceName: example.com/mlx-vf
  include: []
{{- else }}
{{ toYaml (dict "devices" (.Values.devices | default dict)) }}
{{- end }}
{{- end -}}
