"""Images, videos and the caches that serve them: the media layer below both the store and the formats."""
