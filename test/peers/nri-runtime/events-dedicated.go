package main

import (
	"context"

	"github.com/containerd/nri/pkg/adaptation"
)

// NRI v0.12 calls the dedicated pod methods, falling back to StateChange
// only when a plugin answers UNIMPLEMENTED.

func runPod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.RunPodSandbox(ctx, &adaptation.RunPodSandboxRequest{Pod: pod})
}

func stopPod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.StopPodSandbox(ctx, &adaptation.StopPodSandboxRequest{Pod: pod})
}

func removePod(ctx context.Context, r *adaptation.Adaptation, pod *adaptation.PodSandbox) error {
	return r.RemovePodSandbox(ctx, &adaptation.RemovePodSandboxRequest{Pod: pod})
}
