// Package apitest holds what the tests that check responses and examples
// against the OpenAPI document share.
package apitest

import (
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

var strictFormats sync.Once

// StrictFormats makes kin-openapi check the string formats the document
// uses that clients' validators (ajv and the like) enforce; by itself it
// checks only a few. It sets kin-openapi's global format table, once.
func StrictFormats() {
	strictFormats.Do(func() {
		openapi3.DefineStringFormatCallback("uri", func(s string) error {
			if u, err := url.Parse(s); err != nil || !u.IsAbs() {
				return fmt.Errorf("not an absolute URI: %q", s)
			}
			return nil
		})
		openapi3.DefineStringFormatCallback("email", func(s string) error {
			if _, err := mail.ParseAddress(s); err != nil || strings.ContainsAny(s, "<> ") {
				return fmt.Errorf("not an email address: %q", s)
			}
			return nil
		})
	})
}
