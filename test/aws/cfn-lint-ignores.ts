/**
 * Every cfn-lint finding the suite accepts, in one place, each with its reason. Errors are never
 * accepted; a warning not listed here fails test/aws/cfn-lint.test.ts.
 */
export const CFN_LINT_IGNORES: ReadonlyArray<{ rule: string; reason: string }> = [
  {
    rule: 'W3005',
    reason:
      'Redundant DependsOn: CDK adds an explicit DependsOn from each Lambda function to its service role (and ' +
      'its default policy) although a GetAtt already orders them. Harmless to CloudFormation, emitted by ' +
      'aws-lambda and the custom resource provider framework, not by code here.',
  },
];
