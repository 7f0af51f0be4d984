"""Qt-free figures and the HTML/PDF report."""
