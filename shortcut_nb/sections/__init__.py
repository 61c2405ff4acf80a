"""One folder per notebook: study, record, views, widget and claims of each section."""
