"""Corpus forms: tagged characters (columns, inline), entity spans from annotation tools
(doccano, Label Studio, spaCy-style, our JSONL), brat standoff; BMES/BIO tags and sentences."""
