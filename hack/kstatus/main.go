// Command kstatus-check prints what kstatus computes for one Kubernetes object.
//
// It reads the object as JSON (`kubectl get ... -o json`) from the file named by its only
// argument, or from standard input when there is none or it is "-", runs
// sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute on it, and prints one JSON line:
//
//	{"status":"InProgress","message":"...","conditions":[{"type":"Reconciling",...}]}
//
// status is one of InProgress, Failed, Current, Terminating, NotFound, Unknown. It exits 0 when
// the status was computed, whatever it is, and 2 (with the reason on stderr) when it could not
// read the object or kstatus returned an error.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type output struct {
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Conditions []status.Condition `json:"conditions"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus-check:", err)
		os.Exit(2)
	}
}

func run(args []string, stdin io.Reader, stdout io.Writer) error {
	in := stdin
	switch {
	case len(args) > 1:
		return fmt.Errorf("usage: kstatus-check [FILE|-]")
	case len(args) == 1 && args[0] != "-":
		file, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer file.Close()
		in = file
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading the object: %w", err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("parsing the object: %w", err)
	}
	result, err := status.Compute(obj)
	if err != nil {
		return fmt.Errorf("computing the status: %w", err)
	}
	conditions := result.Conditions
	if conditions == nil {
		conditions = []status.Condition{}
	}
	return json.NewEncoder(stdout).Encode(output{
		Status:     result.Status.String(),
		Message:    result.Message,
		Conditions: conditions,
	})
}
