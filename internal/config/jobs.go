package config

// JobsConfig is the background job runner on this node.
type JobsConfig struct {
	MaxWorkers int `env:"JOBS_MAX_WORKERS" default:"10" doc:"Background jobs worked at once on this node."`
}

func (j JobsConfig) validate(string) []string {
	var r report
	r.inRange(1, 10000, namedInt{"JOBS_MAX_WORKERS", j.MaxWorkers})
	return r
}
