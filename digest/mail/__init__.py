"""Mail: build messages once per digest and hand them to a transport."""
