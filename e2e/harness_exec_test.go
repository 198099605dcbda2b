//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// ControllerExec runs /controller args... inside the controller container
// id (FROM scratch: no shell, but the binary is there), as an operator
// does with `docker exec`, and returns its stdout, stderr and exit code.
func (h *Harness) ControllerExec(id string, args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	ex, err := h.Docker.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: append([]string{"/controller"}, args...), AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return "", "", -1, fmt.Errorf("exec create: %w", err)
	}
	att, err := h.Docker.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", "", -1, fmt.Errorf("exec attach: %w", err)
	}
	defer att.Close()
	var so, se bytes.Buffer
	if _, err := stdcopy.StdCopy(&so, &se, att.Reader); err != nil {
		return so.String(), se.String(), -1, fmt.Errorf("exec output: %w", err)
	}
	ins, err := h.Docker.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return so.String(), se.String(), -1, fmt.Errorf("exec inspect: %w", err)
	}
	return so.String(), se.String(), ins.ExitCode, nil
}
