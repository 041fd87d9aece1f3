package agent

import "path/filepath"

func baseName(p string) string { return filepath.Base(p) }
