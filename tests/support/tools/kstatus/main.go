// kstatus computes the kstatus of Kubernetes objects with sigs.k8s.io/cli-utils' status.Compute,
// the library Flux (health checks, `wait: true`) and kstatus-based tools use, from their JSON.
//
// usage: kstatus OBJECT.json...   (- reads one object from stdin)
// prints one line per object: {"status":"Current","message":"..."}
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	for _, f := range os.Args[1:] {
		var data []byte
		var err error
		if f == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		check(err)
		u := &unstructured.Unstructured{}
		check(u.UnmarshalJSON(data))
		res, err := status.Compute(u)
		check(err)
		out, _ := json.Marshal(map[string]string{"status": res.Status.String(), "message": res.Message})
		fmt.Println(string(out))
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}
