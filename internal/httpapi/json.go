package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// DecodeJSON reads a JSON request body into dst. It refuses a media type
// other than JSON (415), and malformed JSON, unknown fields, trailing data
// and an empty body (400 invalid_json). Body size limits surface as 413.
func DecodeJSON(r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return NewProblem(http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Send the request body as application/json.")
		}
	}
	dec := json.NewDecoder(r.Body)
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
	return nil
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
