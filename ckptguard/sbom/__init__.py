"""SPDX 2.3 documents describing models: packages with checksums, declared and concluded
licenses, LicenseRef definitions, and relationships to base models."""
