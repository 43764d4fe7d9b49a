"""Raw sources, text cleaning, canonical layouts and the converters between them."""
