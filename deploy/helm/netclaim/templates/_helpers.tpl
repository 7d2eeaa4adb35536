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

{{/*
A host directory from a value, as the agent's container mounts it: cleaned
(no trailing slash), absolute and not / itself. Called with (list NAME VALUE),
NAME the value's name for the error messages.
*/}}
{{- define "netclaim.hostDir" -}}
{{- $name := index . 0 -}}
{{- $dir := required (printf "%s is required" $name) (index . 1) | clean -}}
{{- if or (not (hasPrefix "/" $dir)) (eq $dir "/") -}}
{{- fail (printf "%s must be an absolute path other than /, not %q" $name (index . 1)) -}}
{{- end -}}
{{- $dir -}}
{{- end -}}

{{/* The kubelet's root directory. */}}
{{- define "netclaim.kubeletRootDir" -}}
{{- include "netclaim.hostDir" (list "kubelet.rootDir" .Values.kubelet.rootDir) -}}
{{- end -}}

{{/* The host's CNI plugin directory. */}}
{{- define "netclaim.cniBinDir" -}}
{{- if .Values.cni.binDir -}}
{{ include "netclaim.hostDir" (list "cni.binDir" .Values.cni.binDir) }}
{{- else if .Values.openshift -}}
/var/lib/cni/bin
{{- else -}}
/opt/cni/bin
{{- end -}}
{{- end -}}

{{/*
The runtime's NRI socket; its directory is the `nri` volume, mounted at the
same path.
*/}}
{{- define "netclaim.nriSocketPath" -}}
{{- $path := required "nri.socketPath is required" .Values.nri.socketPath | clean -}}
{{ include "netclaim.hostDir" (list "nri.socketPath's directory" (dir $path)) }}/{{ base $path }}
{{- end -}}

{{/* Where the agent writes CDI specs for the runtime: the `cdi` volume, mounted at the same path. */}}
{{- define "netclaim.cdiSpecDir" -}}
{{- include "netclaim.hostDir" (list "cdi.specDir" .Values.cdi.specDir) -}}
{{- end -}}

{{/*
The ConfigMap's agent.yaml: apiVersion and kind first, as in the kustomize
base, then agentConfig, then devices. The AgentConfig fields that values of
their own set (kubelet.rootDir, http.port, nri.socketPath, cdi.specDir) win
over agentConfig's: written where they are not the agent's defaults, else left
out (agentConfig's own dropped), so the agent's default is what the
DaemonSet mounts. On OpenShift, empty devices are the overlay's opt-in
policy, written as deploy/overlays/openshift writes it.
*/}}
{{- define "netclaim.agentConfig" -}}
{{- $config := deepCopy (.Values.agentConfig | default dict) -}}
{{- $_ := unset $config "devices" -}}
{{- $fromValues := list
  (list "kubelet" "rootDir" (include "netclaim.kubeletRootDir" .) "/var/lib/kubelet")
  (list "http" "port" (int .Values.http.port) 9402)
  (list "nri" "socketPath" (include "netclaim.nriSocketPath" .) "/var/run/nri/nri.sock")
  (list "cdi" "specDir" (include "netclaim.cdiSpecDir" .) "/var/run/cdi") -}}
{{- range $fromValues -}}
{{- $section := get $config (index . 0) | default dict -}}
{{- if eq (index . 2) (index . 3) -}}
{{- $_ := unset $section (index . 1) -}}
{{- else -}}
{{- $_ := set $section (index . 1) (index . 2) -}}
{{- end -}}
{{- if $section -}}
{{- $_ := set $config (index . 0) $section -}}
{{- else -}}
{{- $_ := unset $config (index . 0) -}}
{{- end -}}
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
