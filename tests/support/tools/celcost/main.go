// celcost prints the estimated cost of every x-kubernetes-validations rule of CRD files, computed
// by the same code the kube-apiserver runs when a CRD is created (apiextensions-apiserver's CEL
// schema context and compiler, at the control plane's version), and the total per CRD against the
// limits the API server enforces. Output: one JSON object per CRD on stdout.
//
// usage: celcost FILE...
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"sigs.k8s.io/yaml"
)

type rule struct {
	Path        string `json:"path"`
	Rule        string `json:"rule"`
	Cost        uint64 `json:"cost"`
	Cardinality uint64 `json:"cardinality"`
	Error       string `json:"error,omitempty"`
}

type report struct {
	CRD          string `json:"crd"`
	Total        uint64 `json:"total"`
	TotalLimit   uint64 `json:"totalLimit"`
	PerRuleLimit uint64 `json:"perRuleLimit"`
	Rules        []rule `json:"rules"`
}

func main() {
	envSet := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	for _, f := range os.Args[1:] {
		data, err := os.ReadFile(f)
		check(err)
		var v1 apiextensionsv1.CustomResourceDefinition
		check(yaml.UnmarshalStrict(data, &v1))
		for _, ver := range v1.Spec.Versions {
			var s apiextensions.JSONSchemaProps
			check(apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, &s, nil))
			r := report{CRD: v1.Name + "/" + ver.Name, TotalLimit: validation.StaticEstimatedCRDCostLimit, PerRuleLimit: validation.StaticEstimatedCostLimit, Rules: []rule{}}
			walk(&s, "", validation.RootCELContext(&s), envSet, &r)
			out, _ := json.Marshal(r)
			fmt.Println(string(out))
		}
	}
}

// walk visits the schema like ValidateCustomResourceDefinitionOpenAPISchema does and costs each rule
// like it does: the compiled rule's MaxCost times the node's cardinality (or the compiler's own
// cardinality estimate where an ancestor list or map is unbounded).
func walk(s *apiextensions.JSONSchemaProps, path string, ctx *validation.CELSchemaContext, envSet *environment.EnvSet, r *report) {
	if len(s.XValidations) > 0 {
		info, err := ctx.TypeInfo()
		check(err)
		results, err := cel.Compile(info.Schema, info.DeclType, celconfig.PerCallLimit, envSet, cel.NewExpressionsEnvLoader())
		check(err)
		for i, cr := range results {
			card := cr.MaxCardinality
			if ctx.MaxCardinality != nil {
				card = *ctx.MaxCardinality
			}
			one := rule{Path: path, Rule: s.XValidations[i].Rule, Cardinality: card, Cost: mul(cr.MaxCost, card)}
			if cr.Error != nil {
				one.Error = cr.Error.Detail
			}
			r.Total += one.Cost
			r.Rules = append(r.Rules, one)
		}
	}
	for name, p := range s.Properties {
		p := p
		walk(&p, path+"."+name, ctx.ChildPropertyContext(&p, name), envSet, r)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		walk(s.AdditionalProperties.Schema, path+"[*]", ctx.ChildAdditionalPropertiesContext(s.AdditionalProperties.Schema), envSet, r)
	}
	if s.Items != nil && s.Items.Schema != nil {
		walk(s.Items.Schema, path+"[]", ctx.ChildItemsContext(s.Items.Schema), envSet, r)
	}
}

func mul(a, b uint64) uint64 {
	if a != 0 && b > ^uint64(0)/a {
		return ^uint64(0)
	}
	return a * b
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "celcost:", err)
		os.Exit(1)
	}
}
