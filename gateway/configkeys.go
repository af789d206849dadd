package gateway

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// A configKey is one key of the configuration file, found by reflection
// over Config's yaml tags: the tags are the only list of keys there is.
type configKey struct {
	path  string // "sip.rtp_ports"
	index []int  // reflect.Value.FieldByIndex from Config
	field reflect.StructField
	owner reflect.Type // the struct that declares field
	leaf  bool         // a value (string, number, list, map, port range); else a section
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isSection tells a struct whose fields are keys of their own (sip,
// asr.endpoint) from a value written as one scalar (a port range, a CIDR).
func isSection(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textUnmarshaler)
}

// keysOf lists the keys of struct type t, sections before their keys, in
// the order of the fields; embedded (yaml inline) structs add their keys
// at their place.
func keysOf(t reflect.Type, prefix string, index []int) []configKey {
	var out []configKey
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		at := append(append([]int{}, index...), i)
		if opts == "inline" {
			out = append(out, keysOf(f.Type, prefix, at)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml's own rule
		}
		k := configKey{path: prefix + name, index: at, field: f, owner: t, leaf: !isSection(f.Type)}
		out = append(out, k)
		if !k.leaf {
			out = append(out, keysOf(f.Type, k.path+".", at)...)
		}
	}
	return out
}

// configKeys are every key of the file, sections included.
func configKeys() []configKey { return keysOf(reflect.TypeFor[Config](), "", nil) }

// keyNamed is the key at path.
func keyNamed(path string) (configKey, bool) {
	for _, k := range configKeys() {
		if k.path == path {
			return k, true
		}
	}
	return configKey{}, false
}

// locate finds the key a decoding error is about. yaml.v3 gives a type
// error its line but not its key, and an error from UnmarshalText (a port
// range, a CIDR) neither; decoding each value of the document on its own
// finds the first one that fails. ok is false when none does.
func locate(doc *yaml.Node) (path string, line int, err error, ok bool) {
	var walk func(n *yaml.Node, t reflect.Type, prefix string) bool
	walk = func(n *yaml.Node, t reflect.Type, prefix string) bool {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n.Kind != yaml.MappingNode {
			return false
		}
		keys := map[string]configKey{}
		for _, k := range keysOf(t, "", nil) {
			keys[k.path] = k
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			k, known := keys[kn.Value]
			switch {
			case kn.Value == "<<": // a merge key: yaml.v3 judges it
			case !known:
				path, line, err = prefix+kn.Value, kn.Line, errors.New("unknown key")
				return true
			case k.leaf:
				if derr := vn.Decode(reflect.New(k.field.Type).Interface()); derr != nil {
					var te *yaml.TypeError
					if errors.As(derr, &te) && len(te.Errors) > 0 {
						msg := te.Errors[0] // "line 2: cannot unmarshal ..."
						if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
							msg = rest
						}
						derr = errors.New(msg)
					}
					path, line, err = prefix+kn.Value, vn.Line, derr
					return true
				}
			default:
				if walk(vn, k.field.Type, prefix+kn.Value+".") {
					return true
				}
			}
		}
		return false
	}
	if len(doc.Content) == 0 {
		return "", 0, nil, false
	}
	ok = walk(doc.Content[0], reflect.TypeFor[Config](), "")
	return path, line, err, ok
}

// setText sets the value of key from text, as a flag or an environment
// variable gives it: a string as it is, a duration, a number, a boolean,
// or what the type parses itself (a port range).
func setText(v reflect.Value, text string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(text))
	}
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(text)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(text)
	case v.CanInt():
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case v.CanFloat():
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return err
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return err
		}
		v.SetBool(b)
	default:
		return fmt.Errorf("a %s is not set from text", v.Type())
	}
	return nil
}

// Set sets key ("sip.rtp_ports") from text, as a flag or an environment
// variable gives it. It does not validate the configuration.
func (c *Config) Set(key, text string) error {
	k, ok := keyNamed(key)
	if !ok || !k.leaf {
		return fmt.Errorf("%s: no such key", key)
	}
	if err := setText(reflect.ValueOf(c).Elem().FieldByIndex(k.index), text); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}
