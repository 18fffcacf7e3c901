"""The thin HTTP edge: translate requests into simulator calls and answers back."""
