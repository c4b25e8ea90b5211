"""Git hosts' APIs beyond git itself: pull requests (`pulls`: the model and the seam, pure;
`github`: GitHub and GitHub Enterprise, through PyGithub)."""
