"""The plumbing every part of the library stands on: publishing a file whole
(`atomic`), reading a file a user hands us without blocking on it (`userfile`: a FIFO,
a device, its fingerprint), bounded YAML (`yamlfile`) and progress bars (`progress`).

May import: errors; outside the project: the standard library, and tqdm and yaml lazily.
"""
