"""The notebook and run machinery: notebook parameters (``params``) and plans (``plan``), the
papermill runner (``runner``, behind run_all.sh), the cluster launcher (``launch``), the
notebook twins (``notebooks``) and Colab set-up (``colab``)."""
