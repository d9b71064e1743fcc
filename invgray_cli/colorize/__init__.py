"""Stage colorize (decode's fallback): colour for a gray that carries no hidden code: automatic, or guided by hints."""
