"""The local web demo (`python -m e2e_him.demo`, `e2e-him-demo`): photos and videos matted by predict's own
path (predictor/), shown and packed for download. Everything but `page` runs without Gradio."""
