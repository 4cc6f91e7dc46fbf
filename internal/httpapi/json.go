package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DecodeJSON reads a JSON request body into dst. It refuses a media type
// other than JSON (415), and malformed JSON, unknown fields, trailing data
// and an empty body (400 invalid_json). Body size limits surface as 413. A
// string (member name or value) holding invalid UTF-8 or a NUL character
// (\u0000) is refused with 422 validation_failed naming the field, rule
// "text": encoding/json would silently turn invalid UTF-8 into U+FFFD
// (two different passwords would become the same) and keeps NUL, which
// PostgreSQL refuses.
func DecodeJSON(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return NewProblem(http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Send the request body as application/json.")
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		// The client went away or stalled mid-body: its request is
		// incomplete, as when the decoder read it (400, not a 5xx).
		return NewProblem(http.StatusBadRequest, "invalid_json", "The request body could not be read in full.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return NewProblem(http.StatusBadRequest, "invalid_json", "The request body must hold a single JSON value.")
	}
	if field, ok := invalidJSONText(body); !ok {
		return Validation(textFieldError(field))
	}
	return nil
}

// DecodeOptionalJSON is DecodeJSON for a body the client may leave out
// (an endpoint whose every field is optional): an empty body leaves dst
// as it is.
func DecodeOptionalJSON(r *http.Request, dst any) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return NewProblem(http.StatusBadRequest, "invalid_json", "The request body could not be read in full.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return DecodeJSON(r, dst)
}

// invalidJSONText checks every string of a well-formed JSON document, member
// names included, for invalid UTF-8 and NUL. It returns ok and, when a
// string is not valid text, the path of the field holding it ("metadata.a",
// "amr[1]"; "" for the document itself).
func invalidJSONText(body []byte) (field string, ok bool) {
	if utf8.Valid(body) && !bytes.Contains(body, []byte(`\u0000`)) {
		return "", true // NUL can only be written as \u0000 in valid JSON
	}
	type frame struct {
		path    string
		obj     bool
		wantKey bool
		key     string
		idx     int
	}
	var stack []frame
	child := func() string {
		if len(stack) == 0 {
			return ""
		}
		f := stack[len(stack)-1]
		if f.obj {
			if f.path == "" {
				return f.key
			}
			return f.path + "." + f.key
		}
		return f.path + "[" + strconv.Itoa(f.idx) + "]"
	}
	done := func() { // a value of the innermost container is complete
		if len(stack) == 0 {
			return
		}
		f := &stack[len(stack)-1]
		if f.obj {
			f.wantKey = true
		} else {
			f.idx++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			// io.EOF after the document; anything else cannot happen on a
			// body that decoded, but refuse rather than pass it.
			return "", errors.Is(err, io.EOF)
		}
		raw := body[start:dec.InputOffset()]
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, frame{path: child(), obj: t == '{', wantKey: t == '{'})
			default:
				stack = stack[:len(stack)-1]
				done()
			}
		case string:
			if len(stack) > 0 && stack[len(stack)-1].obj && stack[len(stack)-1].wantKey {
				f := &stack[len(stack)-1]
				f.key, f.wantKey = t, false
				if !utf8.Valid(raw) || strings.IndexByte(t, 0) >= 0 {
					return CleanText(child(), 128), false
				}
				continue
			}
			if !utf8.Valid(raw) || strings.IndexByte(t, 0) >= 0 {
				return CleanText(child(), 128), false
			}
			done()
		default:
			done()
		}
	}
}

func jsonProblem(err error) error {
	var (
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
		tooLarge  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.Is(err, io.EOF):
		return NewProblem(http.StatusBadRequest, "invalid_json", "The request body is empty; send a JSON object.")
	case errors.As(err, &syntax):
		return NewProblem(http.StatusBadRequest, "invalid_json", fmt.Sprintf("The request body is not valid JSON (at byte %d).", syntax.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return NewProblem(http.StatusBadRequest, "invalid_json", "The request body is not valid JSON (it ends too soon).")
	case errors.As(err, &typeError):
		field := typeError.Field
		if field == "" {
			return NewProblem(http.StatusBadRequest, "invalid_json", "The request body must be a JSON object.")
		}
		return NewProblem(http.StatusBadRequest, "invalid_json", fmt.Sprintf("Field %q must be of type %s.", field, typeError.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return NewProblem(http.StatusBadRequest, "invalid_json", "Unknown field "+name+".")
	default:
		return NewProblem(http.StatusBadRequest, "invalid_json", "The request body is not valid JSON.")
	}
}
