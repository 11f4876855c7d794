package cli

// LoadConfig finds and reads the project file and the user's file.
func LoadConfig(f *Factory) (*Config, error) {
	return &Config{}, nil
}
