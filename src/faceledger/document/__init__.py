"""Identity documents: the machine-readable zone (ICAO 9303), reading it from an image, and the
document's portrait."""
