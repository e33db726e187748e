"""What a trained model is measured by: probes, post-hoc information, likelihoods (``evaluate``),
voice conversion (``conversion``), what s holds (``s_content``) and the critics' qualification
(``qualify``)."""
