"""Call scripts and questionnaires: definitions loaded from `scripts/`, checked, rendered."""
