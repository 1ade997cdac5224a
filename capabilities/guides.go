package capabilities

// agentsGuide lists the guide files, base.md first.
func agentsGuide(dir, combined string) AgentsGuide {
	files := orderedGuides(dir)
	if files == nil {
		files = []string{}
	}
	return AgentsGuide{
		Combined: combined,
		Dir:      dir + "/",
		Files:    files,
		Instruction: "Read the file at 'combined' before you act on this instance: it holds the full text of " +
			"every file in 'files', one after the other. The per-image guides describe the services and " +
			"APIs that image adds.",
	}
}
