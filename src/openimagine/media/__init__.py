"""Media code: fit generated frames and audio, encode them to video files, probe the results."""
