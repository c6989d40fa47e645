"""Files of the OpenAI-compatible surface (uploaded batch inputs): settings and where the bytes live."""
