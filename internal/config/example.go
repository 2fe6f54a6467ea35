package config

import _ "embed" // for Example

// Example is the annotated example configuration, every key with its
// default: what `scanagent config example` prints. It is a copy of
// config.example.toml at the repository root (a test keeps them identical).
//
//go:embed example.toml
var Example []byte
