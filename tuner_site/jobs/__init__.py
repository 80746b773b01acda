"""Background jobs: a generic lifecycle, and the kinds of job that use it.

`lifecycle` claims a job, beats its heartbeat, stops it on cancel, on its time limit or when
its worker is told to stop (it goes back to the queue then), and ends jobs a dead worker left
running. `process` starts and stops the child process a job runs, with its resource limits.
`models.Job` holds the fields all of that needs. A kind of job (`evaluation`: the workspace's
Evaluator on one server) adds its arguments, its command and how it reads the child's output.
"""
