#!/usr/bin/env python3
# Fixture: exits at once without printing anything.
