package policy_test

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/regsweep/regsweep/gc/policy"
)

// The policies the documentation and examples show are valid.
func TestDocumentedPoliciesParse(t *testing.T) {
	files := map[string][]byte{}
	b, err := os.ReadFile("../../docs/retention.md")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1) {
		files[fmt.Sprintf("docs/retention.md block %d", i+1)] = m[1]
	}
	if len(files) == 0 {
		t.Fatal("docs/retention.md shows no policy")
	}
	cron, err := os.ReadFile("../../docs/deploy/cronjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(cron))
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "ConfigMap" && doc.Data["policy.yaml"] != "" {
			files["docs/deploy/cronjob.yaml"] = []byte(doc.Data["policy.yaml"])
		}
	}
	if _, ok := files["docs/deploy/cronjob.yaml"]; !ok {
		t.Error("the CronJob example carries no policy")
	}
	if files["testdata/builds/policy.yaml"], err = os.ReadFile("../../testdata/builds/policy.yaml"); err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		if _, err := policy.Parse(name, src); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
