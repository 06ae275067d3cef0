// Command pulumi-language-python is istio-canary's own, minimal Pulumi language
// host for Python programs.
//
// Why it exists: upstream's host lives in the module
// github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3, which the
// Go module proxy reachable here does not serve at any version (403). The host's
// protocol is small, though, and everything it needs is in the sdk/v3 module:
// the gRPC service definitions and the `pulumi-language-python-exec` shim (in the
// sdk/v3 zip under python/cmd/), which does the real work inside Python.
//
// What it does: the engine starts it with the engine address as the last
// argument; it serves pulumirpc.LanguageRuntime on a free loopback port and
// prints the port. Run() starts
//
//	<python> -u pulumi-language-python-exec --monitor .. --engine .. --project ..
//	         --root_directory .. --stack .. --pwd .. --dry_run .. --parallel ..
//	         [--organization ..] [--tracing ..] <program> [args...]
//
// with PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS in the environment, exactly the
// interface the shim parses. The Python interpreter is, in order: the project's
// `runtime.options.virtualenv` (relative to the project root), $PULUMI_PYTHON_CMD,
// an active $VIRTUAL_ENV, python3 on PATH.
//
// Not implemented (the engine copes): required-plugin discovery (the engine loads
// provider plugins when the program first registers a resource; ambient plugins on
// PATH are found), program dependency listing, Python-based providers (RunPlugin),
// code generation, uv/poetry toolchains and typecheckers.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	pbempty "google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// Exit code the shim uses after it has already reported a user-actionable error.
const bailExitCode = 32

func main() {
	fs := flag.NewFlagSet("pulumi-language-python", flag.ContinueOnError)
	tracing := fs.String("tracing", "", "Emit tracing to a Zipkin-compatible tracing endpoint")
	root := fs.String("root", "", "Project root path to use")
	virtualenv := fs.String("virtualenv", "", "Virtual environment path to use")
	_ = fs.String("toolchain", "", "Ignored (only pip/virtualenv is supported)")
	_ = fs.String("typechecker", "", "Ignored")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	engine := ""
	if args := fs.Args(); len(args) > 0 {
		engine = args[len(args)-1]
	}

	host := &pythonHost{engineAddress: engine, tracing: *tracing, root: *root, virtualenv: *virtualenv}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
		Options: rpcutil.OpenTracingServerInterceptorOptions(nil),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fatal: could not start language host RPC server: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from our first line of stdout.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "fatal: language host RPC stopped serving: %v\n", err)
		os.Exit(1)
	}
}

type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu            sync.Mutex
	engineAddress string
	tracing       string
	root          string
	virtualenv    string
}

func (h *pythonHost) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	if req.RootDirectory != nil && h.root == "" {
		h.root = req.GetRootDirectory()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *pythonHost) GetPluginInfo(context.Context, *pbempty.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// GetRequiredPlugins / GetRequiredPackages: report nothing; plugins load on demand.
func (h *pythonHost) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *pythonHost) GetRequiredPackages(context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

func (h *pythonHost) GetProgramDependencies(context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}

func (h *pythonHost) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *pythonHost) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	py, env, err := h.python(req.GetInfo())
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(py, "--version")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", py, err)
	}
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Python"))
	return &pulumirpc.AboutResponse{Executable: py, Version: v}, nil
}

// optionString reads a string from the program's runtime options (Pulumi.yaml runtime.options).
func optionString(info *pulumirpc.ProgramInfo, key string) string {
	if info == nil || info.GetOptions() == nil {
		return ""
	}
	if v, ok := info.GetOptions().GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

// python picks the interpreter and the environment to run it with.
func (h *pythonHost) python(info *pulumirpc.ProgramInfo) (string, []string, error) {
	env := os.Environ()
	h.mu.Lock()
	venv, root := h.virtualenv, h.root
	h.mu.Unlock()
	if v := optionString(info, "virtualenv"); v != "" {
		venv = v
	}
	if info.GetRootDirectory() != "" {
		root = info.GetRootDirectory()
	}
	if venv != "" {
		if !filepath.IsAbs(venv) {
			base := root
			if base == "" {
				base, _ = os.Getwd()
			}
			venv = filepath.Join(base, venv)
		}
		py := filepath.Join(venv, "bin", "python")
		if _, err := os.Stat(py); err != nil {
			return "", nil, fmt.Errorf("the virtual environment %s has no bin/python: run `python3 -m venv %s` "+
				"and install requirements.txt into it", venv, venv)
		}
		env = setEnv(env, "VIRTUAL_ENV", venv)
		env = setEnv(env, "PATH", filepath.Join(venv, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
		env = unsetEnv(env, "PYTHONHOME")
		return py, env, nil
	}
	if c := os.Getenv("PULUMI_PYTHON_CMD"); c != "" {
		return c, env, nil
	}
	if v := os.Getenv("VIRTUAL_ENV"); v != "" {
		if py := filepath.Join(v, "bin", "python"); fileExists(py) {
			return py, env, nil
		}
	}
	for _, c := range []string{"python3", "python"} {
		if p, err := exec.LookPath(c); err == nil {
			return p, env, nil
		}
	}
	return "", nil, errors.New("no python3 found on PATH (set PULUMI_PYTHON_CMD or runtime.options.virtualenv)")
}

// execShim locates pulumi-language-python-exec next to this binary (or on PATH).
func execShim() (string, error) {
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec"); fileExists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("pulumi-language-python-exec"); err == nil {
		return p, nil
	}
	return "", errors.New("pulumi-language-python-exec not found next to pulumi-language-python or on PATH")
}

func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	py, env, err := h.python(info)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	shim, err := execShim()
	if err != nil {
		return nil, err
	}

	program := req.GetProgram() //nolint:staticcheck // fallback for engines without ProgramInfo
	rootDir := ""
	if info != nil {
		rootDir = info.GetRootDirectory()
		if info.GetProgramDirectory() != "" {
			program = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
		}
	}
	if program == "" {
		program = "."
	}

	h.mu.Lock()
	engine, tracing := h.engineAddress, h.tracing
	h.mu.Unlock()

	args := []string{"-u", shim,
		"--monitor", req.GetMonitorAddress(),
		"--engine", engine,
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		"--dry_run", strconv.FormatBool(req.GetDryRun()),
		"--parallel", strconv.Itoa(int(req.GetParallel())),
	}
	if rootDir != "" {
		args = append(args, "--root_directory", rootDir)
	}
	if req.GetOrganization() != "" {
		args = append(args, "--organization", req.GetOrganization())
	}
	if tracing != "" {
		args = append(args, "--tracing", tracing)
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	configMap := req.GetConfig()
	if configMap == nil {
		configMap = map[string]string{} // "null" would crash the shim's set_all_config
	}
	config, err := json.Marshal(configMap)
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	env = setEnv(env, "PULUMI_CONFIG", string(config))
	env = setEnv(env, "PULUMI_CONFIG_SECRET_KEYS", string(secrets))
	env = setEnv(env, "PYTHONUNBUFFERED", "1")

	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Env = env
	cmd.Dir = req.GetPwd()
	// The engine forwards our stdout/stderr to the user.
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == bailExitCode {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("failed to run %s: %v", py, err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// InstallDependencies creates the configured virtualenv (if missing) and pip-installs requirements.txt.
func (h *pythonHost) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	info := req.GetInfo()
	dir := req.GetDirectory() //nolint:staticcheck
	if info != nil && info.GetProgramDirectory() != "" {
		dir = info.GetProgramDirectory()
	}
	root := dir
	if info != nil && info.GetRootDirectory() != "" {
		root = info.GetRootDirectory()
	}
	venv := optionString(info, "virtualenv")
	out := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	errOut := &streamWriter{send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	run := func(name string, args ...string) error {
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = out, errOut
		return cmd.Run()
	}
	py := "python3"
	if venv != "" {
		if !filepath.IsAbs(venv) {
			venv = filepath.Join(root, venv)
		}
		py = filepath.Join(venv, "bin", "python")
		if !fileExists(py) {
			if err := run("python3", "-m", "venv", venv); err != nil {
				return fmt.Errorf("creating virtualenv %s: %w", venv, err)
			}
		}
	}
	reqs := filepath.Join(dir, "requirements.txt")
	if !fileExists(reqs) {
		reqs = filepath.Join(root, "requirements.txt")
	}
	if fileExists(reqs) {
		if err := run(py, "-m", "pip", "install", "-r", reqs); err != nil {
			return fmt.Errorf("pip install -r %s: %w", reqs, err)
		}
	}
	return nil
}

type streamWriter struct{ send func([]byte) error }

func (w *streamWriter) Write(p []byte) (int, error) {
	if err := w.send(bytes.Clone(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = (*streamWriter)(nil)

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func setEnv(env []string, key, value string) []string {
	return append(unsetEnv(env, key), key+"="+value)
}

func unsetEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
