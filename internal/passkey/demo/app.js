// filled in by the demo page work
