"""Asset groups, one module each (DESIGN.md section 4)."""
