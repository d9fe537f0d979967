return {
  prefix = 't:',
  deny_commands = {'A'
}
