"""OpenAI-compatible endpoints (`/v1/chat/completions`, `/v1/completions`, `/v1/moderations`,
`/v1/models`), each request run as high-priority jobs on the fleet's workers."""
