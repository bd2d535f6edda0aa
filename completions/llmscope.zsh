#compdef llmscope

_llmscope_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _LLMSCOPE_COMPLETE=complete_zsh llmscope)
}

compdef _llmscope_completion llmscope