package config

import (
	"strings"

	"github.com/gatehouse/gatehouse/internal/sms"
)

// SMSConfig is the text message provider (Twilio) and where and how often
// messages may go.
type SMSConfig struct {
	TwilioAccountSID          string   `env:"TWILIO_ACCOUNT_SID" doc:"Twilio account SID (AC…). Empty: text messages are written to DATA_DIR/outbox."`
	TwilioAuthToken           string   `env:"TWILIO_AUTH_TOKEN" secret:"true" doc:"Twilio auth token (also verifies X-Twilio-Signature on status callbacks)."`
	TwilioFrom                string   `env:"TWILIO_FROM" doc:"Sender number in E.164 (or use TWILIO_MESSAGING_SERVICE_SID)."`
	TwilioMessagingServiceSID string   `env:"TWILIO_MESSAGING_SERVICE_SID" doc:"Twilio messaging service SID (MG…), instead of TWILIO_FROM."`
	TwilioBaseURL             string   `env:"TWILIO_BASE_URL" default:"https://api.twilio.com" doc:"Base URL of the Twilio REST API (for regional endpoints or a test double)."`
	AllowedCountries          []string `env:"SMS_ALLOWED_COUNTRIES" doc:"Where text messages may go (toll-fraud protection): country calling codes and/or region codes, e.g. 44,49,US,CA. Empty: everywhere."`
	LimitPerPhone             int      `env:"SMS_LIMIT_PER_PHONE" default:"5" doc:"Text messages per phone number per hour."`
	LimitPerUser              int      `env:"SMS_LIMIT_PER_USER" default:"10" doc:"Text messages per user per hour."`
	LimitPerCountry           int      `env:"SMS_LIMIT_PER_COUNTRY" default:"1000" doc:"Text messages per country calling code per hour (SMS pumping protection)."`
}

func (s SMSConfig) validate(string) []string {
	r := s.twilioProblems()
	if _, _, err := sms.ParseAllowlist(strings.Join(s.AllowedCountries, ",")); err != nil {
		r.bad("SMS_ALLOWED_COUNTRIES", "%v", err)
	}
	r.inRange(1, 1000000,
		namedInt{"SMS_LIMIT_PER_PHONE", s.LimitPerPhone},
		namedInt{"SMS_LIMIT_PER_USER", s.LimitPerUser},
		namedInt{"SMS_LIMIT_PER_COUNTRY", s.LimitPerCountry})
	return r
}

// twilioProblems checks the Twilio account settings, needed together.
func (s SMSConfig) twilioProblems() report {
	var r report
	if s.TwilioAccountSID != "" {
		if !strings.HasPrefix(s.TwilioAccountSID, "AC") {
			r.bad("TWILIO_ACCOUNT_SID", "must start with AC")
		}
		if s.TwilioAuthToken == "" {
			r.bad("TWILIO_AUTH_TOKEN", "required with GATEHOUSE_TWILIO_ACCOUNT_SID")
		}
		if (s.TwilioFrom == "") == (s.TwilioMessagingServiceSID == "") {
			r.bad("TWILIO_FROM", "set exactly one of GATEHOUSE_TWILIO_FROM and GATEHOUSE_TWILIO_MESSAGING_SERVICE_SID")
		}
	}
	if err := checkIssuer(s.TwilioBaseURL); err != nil {
		r.bad("TWILIO_BASE_URL", "%v", err)
	}
	return r
}
