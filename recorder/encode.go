package recorder

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// encoder writes values straight to canonical JSON with reflection, so the
// hot path skips json.Marshal and the re-decode. It produces exactly what
// Canonical(v) produces (a test holds it to that) for the kinds events use,
// and falls back to Canonical for anything else. Not safe for concurrent
// use: each Session's writer goroutine owns one.
type encoder struct {
	fields map[reflect.Type][]fieldInfo
	kv     []member
}

type fieldInfo struct {
	name      string
	index     []int
	omitEmpty bool
}

type member struct {
	name string
	v    reflect.Value
	raw  string // used when v is invalid: an already-encoded value
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	marshalerTyp = reflect.TypeFor[json.Marshaler]()
)

// object appends the canonical object of struct value v plus the extra
// members (already encoded values), sorted together.
func (e *encoder) object(b []byte, v reflect.Value, extra []member) ([]byte, error) {
	// Nested objects recurse, so each level takes its own slice of the
	// shared buffer.
	base := len(e.kv)
	kv := e.kv[base:]
	for _, f := range e.fieldsOf(v.Type()) {
		fv := v.FieldByIndex(f.index)
		if f.omitEmpty && isEmpty(fv) {
			continue
		}
		kv = append(kv, member{name: f.name, v: fv})
	}
	kv = append(kv, extra...)
	slices.SortFunc(kv, func(a, b member) int { return strings.Compare(a.name, b.name) })
	e.kv = append(e.kv[:base], kv...)
	defer func() { clear(e.kv[base:]); e.kv = e.kv[:base] }()
	b = append(b, '{')
	for i, m := range kv {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStr(b, m.name)
		b = append(b, ':')
		if !m.v.IsValid() {
			b = append(b, m.raw...)
			continue
		}
		var err error
		if b, err = e.value(b, m.v); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func (e *encoder) value(b []byte, v reflect.Value) ([]byte, error) {
	t := v.Type()
	if t == timeType {
		ts, _ := v.Interface().(time.Time).MarshalJSON()
		var s string
		_ = json.Unmarshal(ts, &s)
		return appendStr(b, s), nil
	}
	switch t.Kind() {
	case reflect.String:
		return appendStr(b, v.String()), nil
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case reflect.Uint64:
		if v.Uint() > 1<<63-1 {
			break // out of canonical range: let Canonical say so
		}
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			break // []byte is base64 in encoding/json
		}
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i := range v.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = e.value(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			break
		}
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		keys := v.MapKeys()
		if slices.ContainsFunc(keys, func(k reflect.Value) bool { return !utf8.ValidString(k.String()) }) {
			break // keys change when invalid UTF-8 is replaced: take the slow path
		}
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStr(b, k.String())
			b = append(b, ':')
			var err error
			if b, err = e.value(b, v.MapIndex(k)); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if !t.Implements(marshalerTyp) {
			return e.value(b, v.Elem())
		}
	case reflect.Struct:
		if !t.Implements(marshalerTyp) && !reflect.PointerTo(t).Implements(marshalerTyp) {
			return e.object(b, v, nil)
		}
	}
	c, err := Canonical(v.Interface())
	if err != nil {
		return nil, err
	}
	return append(b, c...), nil
}

// fieldsOf lists a struct's JSON members as encoding/json sees them
// (embedded structs flattened; the outer field wins a name clash).
func (e *encoder) fieldsOf(t reflect.Type) []fieldInfo {
	if fs, ok := e.fields[t]; ok {
		return fs
	}
	if e.fields == nil {
		e.fields = map[reflect.Type][]fieldInfo{}
	}
	var fs []fieldInfo
	seen := map[string]bool{}
	var walk func(t reflect.Type, index []int, depth int)
	walk = func(t reflect.Type, index []int, depth int) {
		var embedded []reflect.StructField
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
				embedded = append(embedded, sf)
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			fs = append(fs, fieldInfo{name: name, index: append(slices.Clone(index), i), omitEmpty: strings.Contains(","+opts+",", ",omitempty,")})
		}
		for _, sf := range embedded {
			walk(sf.Type, append(slices.Clone(index), sf.Index...), depth+1)
		}
	}
	walk(t, nil, 0)
	e.fields[t] = fs
	return fs
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return v.Uint() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// appendStr appends s as a canonical JSON string (see appendString).
func appendStr(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		if c < 0x80 {
			switch c {
			case '"':
				b = append(b, `\"`...)
			case '\\':
				b = append(b, `\\`...)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			case 0x7f:
				b = append(b, c)
			default:
				b = appendU(b, rune(c))
			}
			start = i + 1
			continue
		}
		r, size := decodeRune(s[i:])
		if r > 0xffff {
			r1, r2 := utf16Encode(r)
			b = appendU(b, r1)
			b = appendU(b, r2)
		} else {
			b = appendU(b, r)
		}
		i += size - 1
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendU(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[(r>>12)&0xf], hexDigits[(r>>8)&0xf], hexDigits[(r>>4)&0xf], hexDigits[r&0xf])
}
