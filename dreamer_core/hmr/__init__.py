"""HMR2-style human mesh recovery: backbone + transformer decoder with a body-parameter query."""
